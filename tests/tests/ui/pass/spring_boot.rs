use azure_redis_connect::{Auth, AzureRedisConfig, SecretString};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "spring_boot")]
struct Cache {
    host: String,
    port: Option<u16>,
    database: Option<u32>,
    password: SecretString,
    ssl: Option<bool>,
}

fn main() {
    let cache = Cache::from_vars([
        ("SPRING_REDIS_HOST", "shop.redis.cache.windows.net"),
        ("SPRING_REDIS_PORT", "6380"),
        ("SPRING_REDIS_PASSWORD", "key"),
        ("SPRING_REDIS_SSL", "true"),
    ])
    .unwrap();
    assert!(matches!(cache.auth().unwrap(), Auth::AccessKey { .. }));
    assert_eq!(Cache::variables()[0].env, "SPRING_REDIS_HOST");
}
