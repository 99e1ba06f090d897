use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
struct Cache(String, u16);

fn main() {}
