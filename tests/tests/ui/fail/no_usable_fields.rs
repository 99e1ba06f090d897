use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Settings {
    #[azure_redis(env = "LISTEN_ADDR")]
    listen: String,
}

fn main() {}
