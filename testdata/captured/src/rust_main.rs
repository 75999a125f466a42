use std::{thread, time::Duration, process::Command};
fn main() {
    if std::env::args().nth(1).as_deref() == Some("spawn") {
        let mut v = vec![];
        for _ in 0..200 { match Command::new("sleep").arg("30").spawn() { Ok(c) => v.push(c), Err(e) => { eprintln!("Failed to spawn process: {}", e); eprintln!("{:?}", e); break; } } }
        return;
    }
    let mut v = vec![];
    for _ in 0..100000 { v.push(thread::spawn(|| thread::sleep(Duration::from_secs(60)))); }
}
