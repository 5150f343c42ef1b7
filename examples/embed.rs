//! Embedding dify-stack: plan and apply the test profile in a few lines. Uses the standard AWS
//! configuration chain (set `AWS_ENDPOINT_URL` to try it against an emulator).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sdk = aws_config::load_from_env().await;
    let config = dify_stack::Profile::Test.config().with_name("dify-embed")?;
    let stack = dify_stack::Stack::connect(config, sdk).await?;
    println!("{}", stack.plan().await?);
    let outputs = stack.apply().await?;
    println!("{}", serde_json::to_string_pretty(&outputs)?);
    Ok(())
}
