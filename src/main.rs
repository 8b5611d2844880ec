fn main() {
    std::process::exit(codex_maint::cli::main_exit_code());
}
