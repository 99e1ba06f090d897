use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache {
    host: String,
    #[azure_redis(role = "host", env = "CACHE_HOST")]
    cache_host: String,
}

fn main() {}
