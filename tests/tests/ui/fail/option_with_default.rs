use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache {
    host: String,
    #[azure_redis(default = 6380)]
    port: Option<u16>,
}

fn main() {}
