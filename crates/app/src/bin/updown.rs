//! The `updown` binary: everything lives in the library.

/// mimalloc: under load glibc's malloc and free took an eighth of the
/// service's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let code = updown_app::cli::main().await;
    std::process::exit(code);
}
