// The addon links against Node's N-API symbols at load time (macOS only;
// elsewhere the crate is just its pure parts).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        napi_build::setup();
    }
}
