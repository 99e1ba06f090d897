use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache {
    #[azure_redis(default = 6380)]
    host: String,
    #[azure_redis(default = "six")]
    port: u16,
    #[azure_redis(default = 1)]
    ssl: bool,
    #[azure_redis(default = "0")]
    database: Option<u8>,
}

fn main() {}
