//! The soak, small: `regard bench soak` with 100 jobs, 3 SIGKILLs, a broker restart, a short
//! database stop and dropped connections, on a private RabbitMQ node and PostgreSQL cluster it
//! starts itself. The command checks every job ended exactly once and exits 1 otherwise; this
//! test reads its table too. No timing is asserted (the drain is bounded only so that a stuck
//! job fails the test instead of hanging it). `REGARD_SOAK_SEED` repeats a run.

use std::process::Command;

/// The cells of the table row that follows the header line starting with `header`.
fn row(stdout: &str, header: &str) -> Vec<String> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with(header));
    lines
        .next()
        .unwrap_or_else(|| panic!("no table {header:?}:\n{stdout}"));
    lines.next(); // the |---| line
    let line = lines.next().expect("a data row");
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn a_small_soak_with_kills_a_broker_restart_and_a_database_stop_loses_and_doubles_nothing() {
    let seed = std::env::var("REGARD_SOAK_SEED").unwrap_or_else(|_| "20261201".into());
    let out = Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["bench", "soak", "--jobs", "100", "--trailers", "2"])
        .args(["--workers", "2", "--kills", "3", "--broker-restarts", "1"])
        .args(["--db-stops", "1", "--db-stop-seconds", "8"])
        .args(["--connection-drops", "2", "--drain-timeout", "600"])
        .args(["--seed", &seed])
        .env("REGARD_LOG", "warn")
        .output()
        .expect("regard bench soak runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "soak failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let outcome = row(&stdout, "| messages |");
    assert_eq!(outcome.len(), 13, "{stdout}");
    let cell = |i: usize| outcome[i].as_str();
    let (messages, contents, analysed, reused, poison) =
        (cell(0), cell(2), cell(3), cell(4), cell(6));
    let (lost, doubled, dead_not_poison, ledger) = (cell(7), cell(8), cell(9), cell(10));
    assert_eq!(messages, "100");
    assert_eq!(analysed, contents, "every distinct content analysed once");
    assert_ne!(reused, "0", "duplicates reuse the stored result");
    assert_ne!(poison, "0");
    assert_eq!([lost, doubled, dead_not_poison, ledger], ["0"; 4]);
    // Every planned fault was injected.
    let faults: Vec<Vec<String>> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("| fault |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert_eq!(faults.len(), 5, "{stdout}");
    for f in &faults {
        assert_eq!(f[1], f[2], "fault {} not injected as planned", f[0]);
    }
}
