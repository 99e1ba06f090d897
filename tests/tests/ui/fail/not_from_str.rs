use azure_redis_connect::AzureRedisConfig;

struct Timeout(u64);

#[derive(AzureRedisConfig)]
struct Cache {
    host: String,
    #[azure_redis(env = "TIMEOUT")]
    timeout: Timeout,
}

fn main() {}
