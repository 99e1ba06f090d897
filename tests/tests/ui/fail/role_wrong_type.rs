use azure_redis_connect::AzureRedisConfig;

type Port = String;

#[derive(AzureRedisConfig)]
struct Cache {
    host: String,
    ssl: Option<String>,
    database: bool,
}

// A type the macro cannot see through is caught by the compiler, at the field's type.
#[derive(AzureRedisConfig)]
struct Aliased {
    host: String,
    port: Port,
}

fn main() {}
