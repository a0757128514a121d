//! The `updown` binary: everything lives in the library.

#[tokio::main]
async fn main() {
    let code = updown_app::cli::main().await;
    std::process::exit(code);
}
