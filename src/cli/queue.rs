//! `regard queue status` and `regard queue dead-letters list|requeue`.

use crate::cli::{DeadLettersCommand, QueueStatusArgs};
use crate::queue::admin::{self, DeadLetter, QueueDepth};

pub async fn status(args: QueueStatusArgs) -> anyhow::Result<bool> {
    let topology = args.topology.topology();
    let depths = admin::status(&args.topology.amqp_url, &topology).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&depths)?);
    } else {
        print!("{}", status_table(&depths));
    }
    // A missing queue means the topology was never declared: say it with the exit code too.
    Ok(depths.iter().all(|d| d.messages.is_some()))
}

pub async fn dead_letters(command: DeadLettersCommand) -> anyhow::Result<bool> {
    match command {
        DeadLettersCommand::List(args) => {
            let topology = args.topology.topology();
            let letters = admin::dead_letters(
                &args.topology.amqp_url,
                &topology,
                args.code.as_deref(),
                args.limit,
            )
            .await?;
            print_letters(&letters, args.json)?;
            if !args.json {
                println!(
                    "{} dead letter(s) in {}",
                    letters.len(),
                    topology.dead_queue()
                );
            }
        }
        DeadLettersCommand::Requeue(args) => {
            let topology = args.topology.topology();
            let summary = admin::requeue(
                &args.topology.amqp_url,
                &topology,
                args.code.as_deref(),
                args.limit,
            )
            .await?;
            print_letters(&summary.requeued, args.json)?;
            if !args.json {
                println!(
                    "{} dead letter(s) requeued on {}, {} left in {}",
                    summary.requeued.len(),
                    topology.jobs_queue(),
                    summary.kept,
                    topology.dead_queue()
                );
            }
        }
    }
    Ok(true)
}

fn print_letters(letters: &[DeadLetter], json: bool) -> anyhow::Result<()> {
    if json {
        for l in letters {
            println!("{}", serde_json::to_string(l)?);
        }
    } else {
        print!("{}", letters_table(letters));
    }
    Ok(())
}

fn dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "–".into(), T::to_string)
}

/// The table of `queue status`. Pure.
pub fn status_table(depths: &[QueueDepth]) -> String {
    let mut out = format!(
        "{:<40} {:<6} {:>9} {:>9}\n",
        "queue", "role", "messages", "consumers"
    );
    for d in depths {
        out.push_str(&format!(
            "{:<40} {:<6} {:>9} {:>9}\n",
            d.queue,
            d.role,
            d.messages
                .map_or_else(|| "missing".into(), |m| m.to_string()),
            dash(&d.consumers)
        ));
    }
    if depths.iter().any(|d| d.messages.is_none()) {
        out.push_str("some queues are missing: run `regard queue setup` (same --queue-prefix)\n");
    }
    out
}

/// The table of dead letters. Pure.
pub fn letters_table(letters: &[DeadLetter]) -> String {
    let mut out = format!(
        "{:<36} {:<22} {:>8}  {}\n",
        "job", "error code", "attempts", "error"
    );
    for l in letters {
        let error: String = dash(&l.error).chars().take(100).collect();
        out.push_str(&format!(
            "{:<36} {:<22} {:>8}  {}\n",
            dash(&l.job_id),
            dash(&l.error_code),
            dash(&l.attempts),
            error
        ));
    }
    out
}
