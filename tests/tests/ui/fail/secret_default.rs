use azure_redis_connect::{AzureRedisConfig, SecretString};

#[derive(AzureRedisConfig)]
#[azure_redis(auth = "access_key")]
struct Cache {
    host: String,
    #[azure_redis(default = "hunter2")]
    password: SecretString,
}

fn main() {}
