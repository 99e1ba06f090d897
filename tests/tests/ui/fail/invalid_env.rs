use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache {
    host: String,
    #[azure_redis(env = "LISTEN ADDR")]
    listen: String,
    #[azure_redis(env = "9LIVES")]
    lives: u8,
    #[azure_redis(env = "")]
    empty: u8,
}

fn main() {}
