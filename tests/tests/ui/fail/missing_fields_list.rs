use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
#[azure_redis(auth(user_identity, connection_string))]
struct Cache {
    host: Option<String>,
}

fn main() {}
