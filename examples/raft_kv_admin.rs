//! `raft_kv_admin`: changes a `raft_kv` cluster's membership from the command line,
//! signing each request with the cluster's secret as the nodes require (the client is
//! `raft_kv/admin.rs`, the one `--join` uses; a plain `curl` cannot sign).
//!
//! ```text
//! raft_kv_admin --cluster-secret-file S --node 127.0.0.1:21001 show
//! raft_kv_admin --cluster-secret-file S --node 127.0.0.1:21001 add-learner 4 127.0.0.1:21004
//! raft_kv_admin --cluster-secret-file S --node 127.0.0.1:21001 voters add 4
//! raft_kv_admin --cluster-secret-file S --node 127.0.0.1:21001 voters set 1 2 4
//! raft_kv_admin --cluster-secret-file S --node 127.0.0.1:21001 remove-node 3
//! ```
//!
//! Any member may be named with `--node`: a follower's 307 is followed to the leader.
//! Prints the status and the JSON answer (`show`: the JSON alone, printed only on a 200,
//! so it can be piped to a JSON reader); exits 0 on 200 only.

#[path = "raft_kv/admin.rs"]
mod admin;
#[path = "raft_kv/auth.rs"]
mod auth;

use clap::{Parser, Subcommand, ValueEnum};
use reqwest::{Method, StatusCode};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "raft_kv_admin",
    about = "Change a raft_kv cluster's membership"
)]
struct Args {
    /// The cluster's secret file (the nodes' `--cluster-secret-file`).
    #[arg(long)]
    cluster_secret_file: PathBuf,
    /// Any member's address.
    #[arg(long)]
    node: SocketAddr,
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// `GET /cluster`: the node's view of the membership.
    Show,
    /// Add a node as a learner; answers once it has caught up.
    AddLearner {
        /// Its id: never one used before.
        id: u64,
        /// Its address, `IP:PORT`.
        addr: SocketAddr,
    },
    /// Change the voters: `add` learners, `remove` voters (they stay learners), or `set`
    /// the whole set.
    Voters {
        /// How.
        how: How,
        /// Node ids.
        #[arg(required = true)]
        ids: Vec<u64>,
    },
    /// Remove a node from the cluster (stop it afterwards).
    RemoveNode {
        /// Its id.
        id: u64,
    },
}

/// How `voters` changes them.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum How {
    /// Make these learners voters.
    Add,
    /// Make these voters learners.
    Remove,
    /// Make these the voters.
    Set,
}

async fn run(args: Args) -> Result<StatusCode, String> {
    let secret = auth::Secret::load(&args.cluster_secret_file)?;
    let admin = admin::Admin::new(secret);
    let (method, path, body) = match args.command {
        Command::Show => {
            let view = admin.cluster(args.node).await.map_err(|e| e.to_string())?;
            println!("{view}");
            return Ok(StatusCode::OK);
        }
        Command::AddLearner { id, addr } => (
            Method::POST,
            "/cluster/learners".to_string(),
            serde_json::json!({ "id": id, "addr": addr.to_string() }).to_string(),
        ),
        Command::Voters { how, ids } => {
            let key = match how {
                How::Add => "add",
                How::Remove => "remove",
                How::Set => "voters",
            };
            let body = serde_json::json!({ key: ids }).to_string();
            (Method::POST, "/cluster/voters".to_string(), body)
        }
        Command::RemoveNode { id } => (
            Method::DELETE,
            format!("/cluster/nodes/{id}"),
            String::new(),
        ),
    };
    let reply = admin
        .send(args.node, method, &path, body.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    println!("{} {}", reply.status.as_u16(), reply.body);
    Ok(reply.status)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(StatusCode::OK) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("raft_kv_admin: {e}");
            ExitCode::FAILURE
        }
    }
}
