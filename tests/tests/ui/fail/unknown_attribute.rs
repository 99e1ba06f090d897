use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
#[azure_redis(prefx = "AZURE_REDIS_CACHE1_")]
struct Cache {
    host: String,
    #[azure_redis(evn = "LISTEN_ADDR")]
    listen: String,
    #[azure_redis(defualt = 6380)]
    port: u16,
}

fn main() {}
