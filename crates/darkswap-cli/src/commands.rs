//! The commands that call a running daemon: each sends one [`crate::v1`]
//! request and prints its answer, as aligned tables for people or, with
//! `--json`, as the answer's JSON.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

use crate::{
    cli::{BanCommand, ClientCommand, OrderCommand, TradeCommand, WebRtcCommand},
    client::{Client, ClientError},
    v1,
};

/// Runs `command` against the daemon `client` talks to.
pub async fn run(client: &Client, command: ClientCommand, json: bool) -> Result<(), ClientError> {
    let out = Output { json };
    match command {
        ClientCommand::Status => {
            let status = client.call(&v1::GetStatus).await?;
            out.print(&status, print_status);
        }
        ClientCommand::Peers => {
            let peers = client.call(&v1::ListPeers).await?;
            out.print(&peers, |peers| {
                // One row per connection: a peer reached through a relay
                // and directly shows both, each with its path.
                let rows = peers
                    .iter()
                    .flat_map(|p| {
                        let latency = p.latency_ms.map_or("null".to_owned(), |l| l.to_string());
                        p.connections.iter().map(move |c| {
                            vec![
                                p.peer_id.clone(),
                                c.path.clone(),
                                latency.clone(),
                                c.address.clone(),
                            ]
                        })
                    })
                    .collect();
                table(&["PEER", "PATH", "LATENCY_MS", "ADDRESS"], rows);
            });
        }
        ClientCommand::Connect { addr } => {
            let connected = client.call(&v1::Connect { addr }).await?;
            out.print(&connected, |c| println!("connected to {}", c.peer_id));
        }
        ClientCommand::Order(command) => order(client, command, out).await?,
        ClientCommand::Orderbook { base, quote } => {
            let book = client.call(&v1::GetOrderbook { base, quote }).await?;
            out.print(&book, |book| {
                println!("asks (lowest first)");
                order_table(&book.asks);
                println!("bids (highest first)");
                order_table(&book.bids);
            });
        }
        ClientCommand::Trade(command) => trade(client, command, out).await?,
        ClientCommand::Wallet { sync } => {
            let wallet = if sync {
                client.call(&v1::SyncWallet {}).await?
            } else {
                client.call(&v1::GetWallet).await?
            };
            out.print(&wallet, |w| {
                println!("network {}", w.network);
                for (n, address) in w.addresses.iter().enumerate() {
                    println!("address {n} {address}");
                }
                let rows = w
                    .coins
                    .iter()
                    .map(|c| {
                        let holdings: Vec<String> =
                            c.holdings.iter().map(|(a, n)| format!("{n} {a}")).collect();
                        vec![
                            c.outpoint.clone(),
                            c.value.to_string(),
                            holdings.join(", "),
                            c.committed.to_string(),
                        ]
                    })
                    .collect();
                table(&["OUTPOINT", "SATS", "HOLDINGS", "COMMITTED"], rows);
            });
        }
        ClientCommand::Events => client.follow_events(|data| println!("{data}")).await?,
        ClientCommand::Webrtc(command) => webrtc(client, command, out).await?,
        ClientCommand::Bans { action } => {
            bans(client, action.unwrap_or(BanCommand::List), out).await?
        }
    }
    Ok(())
}

async fn trade(client: &Client, command: TradeCommand, out: Output) -> Result<(), ClientError> {
    match command {
        TradeCommand::Take { order_id, amount } => {
            let trade = client.call(&v1::TakeOrder { order_id, amount }).await?;
            out.print(&trade, |t| trade_table(std::slice::from_ref(t)));
        }
        TradeCommand::List => {
            let trades = client.call(&v1::ListTrades).await?;
            out.print(&trades, |t| trade_table(t));
        }
        TradeCommand::Show { id } => {
            let trade = client.call(&v1::GetTrade { id }).await?;
            out.print(&trade, |t| trade_table(std::slice::from_ref(t)));
        }
        TradeCommand::Cancel { id } => {
            client.call(&v1::CancelTrade { id: id.clone() }).await?;
            out.print(&json!({"cancelled": id}), |_| println!("cancelled {id}"));
        }
    }
    Ok(())
}

fn trade_table(trades: &[v1::Trade]) {
    let rows = trades
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.order_id.clone(),
                t.role.clone(),
                t.state.clone(),
                t.detail.clone().unwrap_or_default(),
                t.txid.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["TRADE", "ORDER", "ROLE", "STATE", "DETAIL", "TXID"], rows);
}

async fn webrtc(client: &Client, command: WebRtcCommand, out: Output) -> Result<(), ClientError> {
    match command {
        WebRtcCommand::Status => {
            let status = client.call(&v1::GetWebRtc).await?;
            out.print(&status, |s| {
                println!("enabled:   {}", s.enabled);
                for r in &s.signaling {
                    println!("signaling: {} {}", r.url, r.state);
                }
                let rows = s
                    .channels
                    .iter()
                    .map(|c| vec![c.peer_id.clone(), c.path.clone()])
                    .collect();
                table(&["PEER", "PATH"], rows);
            });
        }
        WebRtcCommand::Open { peer } => {
            let channel = client
                .call(&v1::OpenWebRtcChannel { peer_id: peer })
                .await?;
            out.print(&channel, |c| println!("open to {} ({})", c.peer_id, c.path));
        }
        WebRtcCommand::Send { peer, message, hex } => {
            let message = if hex {
                v1::WebRtcMessage {
                    text: None,
                    hex: Some(message),
                }
            } else {
                v1::WebRtcMessage {
                    text: Some(message),
                    hex: None,
                }
            };
            client
                .call(&v1::SendWebRtcMessage::new(peer.clone(), message))
                .await?;
            out.print(&json!({ "sent": peer }), |_| println!("sent to {peer}"));
        }
        WebRtcCommand::Receive { peer, wait } => {
            let request = v1::ReceiveWebRtcMessage {
                peer_id: peer,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            };
            let message = client.call(&request).await?;
            out.print(&message, |m| {
                if let Some(m) = m {
                    println!("{}", m.text.as_deref().or(m.hex.as_deref()).unwrap_or(""));
                }
            });
        }
        WebRtcCommand::Close { peer } => {
            client
                .call(&v1::CloseWebRtcChannel {
                    peer_id: peer.clone(),
                })
                .await?;
            out.print(&json!({ "closed": peer }), |_| println!("closed {peer}"));
        }
    }
    Ok(())
}

async fn order(client: &Client, command: OrderCommand, out: Output) -> Result<(), ClientError> {
    match command {
        OrderCommand::Create {
            side,
            base,
            quote,
            amount,
            price,
            expires_in,
        } => {
            let request = v1::CreateOrder {
                side,
                base,
                quote,
                amount,
                price,
                expires_in: expires_in.as_secs(),
            };
            let order = client.call(&request).await?;
            out.print(&order, |o| println!("{}", o.id));
        }
        OrderCommand::Update {
            id,
            amount,
            price,
            expires_in,
        } => {
            let request = v1::UpdateOrder {
                id,
                amount,
                price,
                expires_in_secs: expires_in.map(|d| d.as_secs()),
            };
            let order = client.call(&request).await?;
            out.print(&order, |o| order_table(std::slice::from_ref(o)));
        }
        OrderCommand::Cancel { id } => {
            client.call(&v1::CancelOrder { id: id.clone() }).await?;
            out.print(&json!({ "cancelled": id }), |_| println!("cancelled {id}"));
        }
        OrderCommand::List => {
            let orders = client.call(&v1::ListOwnOrders).await?;
            out.print(&orders, |orders| order_table(orders));
        }
    }
    Ok(())
}

async fn bans(client: &Client, command: BanCommand, out: Output) -> Result<(), ClientError> {
    match command {
        BanCommand::List => {
            let bans = client.call(&v1::ListBans).await?;
            out.print(&bans, |bans| {
                let rows = bans
                    .iter()
                    .map(|b| {
                        vec![
                            b.peer_id.clone(),
                            until_text(b.until),
                            b.reason.clone(),
                            b.bans.to_string(),
                        ]
                    })
                    .collect();
                table(&["PEER", "UNTIL", "REASON", "BANS"], rows);
            });
        }
        BanCommand::Add { peer, duration } => {
            let request = v1::BanPeer {
                peer_id: peer,
                duration_secs: duration.map(|d| d.as_secs().max(1)),
            };
            let ban = client.call(&request).await?;
            out.print(&ban, |b| println!("banned {}", ban_line(b)));
        }
        BanCommand::Remove { peer } => {
            client
                .call(&v1::UnbanPeer {
                    peer_id: peer.clone(),
                })
                .await?;
            out.print(&json!({ "unbanned": peer }), |_| {
                println!("unbanned {peer}")
            });
        }
    }
    Ok(())
}

/// Where an answer goes: JSON or tables.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// Prints `value` as pretty JSON with `--json`, else for people. The
    /// JSON goes through `serde_json::Value`, so object keys come sorted,
    /// as this command has always printed them.
    fn print<T: Serialize>(self, value: &T, human: impl FnOnce(&T)) {
        if self.json {
            let text = serde_json::to_value(value)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_default();
            println!("{text}");
        } else {
            human(value);
        }
    }
}

fn print_status(s: &v1::Status) {
    println!("peer id:   {}", s.peer_id);
    println!("nat:       {}", s.nat_status);
    println!("peers:     {}", s.peers);
    println!("own orders:{}", s.own_orders);
    println!("rejected:  {}", s.rejected_messages);
    for a in &s.listen_addrs {
        println!("listening: {a}");
    }
    for r in &s.relays {
        let rtt = r.rtt_ms.map_or("-".to_owned(), |ms| format!("{ms}ms"));
        println!(
            "relay:     {} {} score={} rtt={rtt} from={}",
            r.peer_id,
            r.state,
            r.score,
            r.sources.join(",")
        );
    }
    println!("banned:    {}", s.banned_peers.len());
    for b in &s.banned_peers {
        println!("banned:    {}", ban_line(b));
    }
}

/// A ban's end for people: RFC 3339 UTC, or `until lifted`.
fn until_text(until: Option<u64>) -> String {
    match until {
        Some(secs) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        }
        None => "until lifted".to_owned(),
    }
}

fn ban_line(b: &v1::Ban) -> String {
    let until = match b.until {
        None => "until lifted".to_owned(),
        t => format!("until {}", until_text(t)),
    };
    format!("{} {until} ({})", b.peer_id, b.reason)
}

/// Header matching [`order_row`].
const ORDER_HEADER: [&str; 7] = ["ID", "SIDE", "AMOUNT", "BASE", "PRICE", "QUOTE", "MAKER"];

/// The fields of an order as table cells.
fn order_row(o: &v1::Order) -> Vec<String> {
    vec![
        o.id.clone(),
        o.side.clone(),
        o.amount.to_string(),
        o.base.clone(),
        o.price.to_string(),
        o.quote.clone(),
        o.maker.clone(),
    ]
}

fn order_table(orders: &[v1::Order]) {
    table(&ORDER_HEADER, orders.iter().map(order_row).collect());
}

/// Prints rows as aligned columns under a header.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}
