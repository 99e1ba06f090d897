use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
#[azure_redis(auth(managed_identity, developer_tools))]
struct Cache {
    host: String,
}

fn main() {}
