use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache {
    host: String,
    ssl: Option<String>,
    database: bool,
}

fn main() {}
