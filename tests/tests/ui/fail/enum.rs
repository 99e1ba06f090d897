use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
enum Cache {
    Azure { host: String },
    Laptop { host: String },
}

fn main() {}
