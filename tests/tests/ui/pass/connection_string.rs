use azure_redis_connect::{Auth, AzureRedisConfig, ExposeSecret, SecretString};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "connection_string")]
struct Cache {
    connection_string: SecretString,
}

fn main() {
    for value in [
        "shop.redis.cache.windows.net:6380,password=a/b+c==,ssl=True,defaultDatabase=1",
        "rediss://:a/b+c==@shop.redis.cache.windows.net:6380/1",
    ] {
        let cache = Cache::from_vars([("AZURE_REDIS_CONNECTIONSTRING", value)]).unwrap();
        let Auth::AccessKey { password, .. } = cache.auth().unwrap() else {
            panic!("expected an access key");
        };
        assert_eq!(password.expose_secret(), "a/b+c==");
        assert_eq!(cache.endpoint().unwrap().database, 1);
    }
}
