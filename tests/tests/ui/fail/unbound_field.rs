use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache {
    hostname: String,
    client_id: Option<String>,
    request_timeout: u64,
}

fn main() {}
