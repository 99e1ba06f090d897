use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache<T> {
    host: String,
    #[azure_redis(env = "EXTRA")]
    extra: T,
}

fn main() {}
