//! The `sendpackets` command.

fn main() {
    println!("sendpackets");
}
