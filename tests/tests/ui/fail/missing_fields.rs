use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
#[azure_redis(auth = "service_principal")]
struct Cache {
    host: String,
    port: Option<u16>,
}

fn main() {}
