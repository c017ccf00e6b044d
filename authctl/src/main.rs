use std::process::ExitCode;

use authctl::{run, Cli, Context};
use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match Context::from_env(cli.aws).await {
        Ok(ctx) => run(cli.command, &ctx).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("authctl: {message}");
            ExitCode::FAILURE
        }
    }
}
