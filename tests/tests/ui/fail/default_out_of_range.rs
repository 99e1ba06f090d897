use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache {
    host: String,
    #[azure_redis(default = 70000)]
    port: u16,
    #[azure_redis(default = -1)]
    database: u8,
}

fn main() {}
