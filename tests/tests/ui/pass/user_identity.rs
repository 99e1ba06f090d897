use azure_redis_connect::{Auth, AzureRedisConfig};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "user-identity")]
struct Cache {
    host: String,
    client_id: String,
}

fn main() {
    let cache = Cache::from_vars([
        ("AZURE_REDIS_HOST", "shop.westeurope.redis.azure.net"),
        ("AZURE_REDIS_CLIENTID", "c1"),
    ])
    .unwrap();
    assert!(matches!(cache.auth().unwrap(), Auth::UserIdentity { client_id } if client_id == "c1"));
    assert_eq!(cache.endpoint().unwrap().port, 10000);
}
