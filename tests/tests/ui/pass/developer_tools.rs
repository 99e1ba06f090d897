use azure_redis_connect::{Auth, AzureRedisConfig};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "developer_tools")]
struct Cache {
    host: String,
    tenant_id: Option<String>,
}

fn main() {
    let cache = Cache::from_vars([("AZURE_REDIS_HOST", "shop.redis.cache.windows.net")]).unwrap();
    assert!(matches!(cache.auth().unwrap(), Auth::DeveloperTools { tenant_id: None }));
}
