use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache {
    #[azure_redis(role = "hots", env = "CACHE")]
    cache: String,
}

fn main() {}
