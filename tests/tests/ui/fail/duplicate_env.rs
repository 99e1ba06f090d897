use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache {
    host: String,
    #[azure_redis(env = "AZURE_REDIS_HOST")]
    backup_host: String,
}

fn main() {}
