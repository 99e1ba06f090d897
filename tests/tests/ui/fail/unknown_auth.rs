use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
#[azure_redis(auth = "user_identty")]
struct Cache {
    host: String,
    client_id: String,
}

fn main() {}
