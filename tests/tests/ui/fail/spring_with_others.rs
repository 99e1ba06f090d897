use azure_redis_connect::{AzureRedisConfig, SecretString};

#[derive(AzureRedisConfig)]
#[azure_redis(auth(spring_boot, system_identity))]
struct Cache {
    host: String,
    password: Option<SecretString>,
}

fn main() {}
