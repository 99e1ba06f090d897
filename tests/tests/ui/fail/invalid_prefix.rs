use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
#[azure_redis(prefix = "AZURE-REDIS-")]
struct Dashes {
    host: String,
}

#[derive(AzureRedisConfig)]
#[azure_redis(prefix = "AZURE_REDIS_CACHE1")]
struct NoUnderscore {
    host: String,
}

fn main() {}
