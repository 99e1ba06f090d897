use azure_redis_connect::{AzureRedisConfig, SecretString};

/// A second connection (`AZURE_REDIS_SESSIONS_...`), customized keys, the app's own settings.
#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "access_key", prefix = "AZURE_REDIS_SESSIONS_")]
struct Sessions {
    host: String,
    #[azure_redis(env = "SESSIONS_KEY")]
    password: SecretString,
    #[azure_redis(role = "port")]
    redis_port: Option<u16>,
    #[azure_redis(env = "WORKERS", default = 4)]
    workers: usize,
    #[azure_redis(env = "GREETING", default = "hello")]
    greeting: String,
    #[azure_redis(env = "RATIO", default = 0.75)]
    ratio: f64,
    #[azure_redis(env = "LOG_LEVEL")]
    log_level: Option<String>,
    #[azure_redis(skip)]
    started: Option<std::time::Instant>,
}

fn main() {
    let sessions = Sessions::from_vars([
        ("AZURE_REDIS_SESSIONS_HOST", "localhost"),
        ("AZURE_REDIS_SESSIONS_PORT", "7000"),
        ("SESSIONS_KEY", "k"),
    ])
    .unwrap();
    assert_eq!(sessions.redis_port, Some(7000));
    assert_eq!(sessions.endpoint().unwrap().port, 7000);
    assert_eq!((sessions.workers, sessions.greeting.as_str()), (4, "hello"));
    assert_eq!(sessions.ratio, 0.75);
    assert!(sessions.log_level.is_none() && sessions.started.is_none());
    let envs: Vec<_> = Sessions::variables().iter().map(|v| v.env).collect();
    assert_eq!(
        envs,
        ["AZURE_REDIS_SESSIONS_HOST", "SESSIONS_KEY", "AZURE_REDIS_SESSIONS_PORT", "WORKERS", "GREETING", "RATIO", "LOG_LEVEL"]
    );
}
