use azure_redis_connect::{Auth, AzureRedisConfig, ExposeSecret, SecretString};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "access_key")]
struct Cache {
    host: String,
    port: u16,
    database: u8,
    password: SecretString,
    ssl: bool,
}

fn main() {
    let cache = Cache::from_vars([
        ("AZURE_REDIS_HOST", "shop.redis.cache.windows.net"),
        ("AZURE_REDIS_PORT", "6380"),
        ("AZURE_REDIS_DATABASE", "2"),
        ("AZURE_REDIS_PASSWORD", "a/b+c=="),
        ("AZURE_REDIS_SSL", "True"),
    ])
    .unwrap();
    assert!(cache.ssl);
    let Auth::AccessKey { password, username: None } = cache.auth().unwrap() else {
        panic!("expected an access key");
    };
    assert_eq!(password.expose_secret(), "a/b+c==");
    let endpoint = cache.endpoint().unwrap();
    assert_eq!((endpoint.port, endpoint.database, endpoint.tls), (6380, 2, true));
}
