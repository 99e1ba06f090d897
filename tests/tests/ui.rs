//! Compile-time checks of `#[derive(AzureRedisConfig)]`: each `fail` case must fail with the
//! reviewed message in its `.stderr`; each `pass` case must compile and run its assertions.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
