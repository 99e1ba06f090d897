use azure_redis_connect::{Auth, AzureRedisConfig};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "system_identity")]
struct Cache {
    host: String,
}

fn main() {
    let cache = Cache::from_vars([("AZURE_REDIS_HOST", "shop.redis.cache.windows.net")]).unwrap();
    assert!(matches!(cache.auth().unwrap(), Auth::SystemIdentity));
    let endpoint = cache.endpoint().unwrap();
    assert_eq!((endpoint.port, endpoint.tls), (6380, true));
    assert!(Cache::from_vars([("UNRELATED", "x")]).is_err());
}
