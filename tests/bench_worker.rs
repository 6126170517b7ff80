//! `regard bench worker` on a few jobs against the real RabbitMQ and PostgreSQL
//! (REGARD_TEST_AMQP_URL, REGARD_TEST_DATABASE_URL; default the local ones): every configuration
//! gets a row with all its jobs done, and the databases and queues it made are gone afterwards.
//! No timing is asserted.

use sqlx::Connection as _;
use std::process::Command;

fn amqp_url() -> String {
    std::env::var("REGARD_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn admin_url() -> String {
    std::env::var("REGARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test]
async fn the_worker_bench_measures_each_configuration_and_leaves_no_database_or_queue_behind() {
    let out = Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["bench", "worker", "--jobs", "6", "--configs", "1x1,1x2"])
        .args(["--timeout", "600"])
        .env("REGARD_AMQP_URL", amqp_url())
        .env("REGARD_BENCH_ADMIN_DATABASE_URL", admin_url())
        .env("REGARD_LOG", "warn")
        .output()
        .expect("regard bench worker runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench worker failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let rows: Vec<Vec<f64>> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("| workers |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().parse::<f64>().expect("numeric cell"))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for (row, (workers, slots)) in rows.iter().zip([(1.0, 1.0), (1.0, 2.0)]) {
        assert_eq!(row.len(), 7, "{stdout}");
        assert_eq!((row[0], row[1]), (workers, slots), "{stdout}");
        assert!(row[2] >= 1.0, "ONNX Runtime threads per slot: {stdout}");
        assert!(
            row[3] > 0.0 && row[4] > 0.0,
            "wall time and jobs/s: {stdout}"
        );
        // jobs/s is the 6 jobs over the wall time, to the printed precision (two decimals each).
        let (fastest, slowest) = (6.0 / (row[3] - 0.005), 6.0 / (row[3] + 0.005));
        assert!(
            row[4] >= slowest - 0.005 && row[4] <= fastest + 0.005,
            "{stdout}"
        );
        assert!(row[5] > 0.0, "the analyses recorded their time: {stdout}");
        assert_eq!(row[6], 0.0, "no job failed: {stdout}");
    }

    // The databases it named were dropped.
    let databases: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("bench worker: database "))
        .map(str::to_string)
        .collect();
    assert_eq!(databases.len(), 2, "{stderr}");
    let mut admin = sqlx::PgConnection::connect(&admin_url())
        .await
        .expect("PostgreSQL is up");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = ANY($1)")
        .bind(&databases)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "{databases:?} still exist");

    // Its queues were deleted: `regard queue status` finds none under the prefix.
    let prefix = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bench worker: queues "))
        .and_then(|l| l.split(".*").next())
        .expect("the prefix is printed")
        .to_string();
    let status = Command::new(env!("CARGO_BIN_EXE_regard"))
        .args(["queue", "status"])
        .env("REGARD_AMQP_URL", amqp_url())
        .env("REGARD_QUEUE_PREFIX", &prefix)
        .output()
        .expect("regard queue status runs");
    let text = String::from_utf8_lossy(&status.stdout).to_string()
        + &String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(text.contains("run `regard queue setup`"), "{text}");
}
