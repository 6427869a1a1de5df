#pragma once
/// A ruleset as libnftables printed it (`nft -j list ruleset`, nftables 1.0.6) for unit
/// tests of the firewall step: built in a test namespace with nft and iptables-nft,
///
///   inet filter: input (policy accept), forward (policy drop), vxlan (regular chain),
///     set blocked { 10.2.0.0/16, 10.3.3.3 }
///     input  5: ct state invalid drop            6: ct state established,related accept
///            7: udp dport 4789 counter drop comment "no vxlan"   (counter: 12 packets)
///            9: tcp dport { 81, 82 } drop        10: tcp dport 1000-2000 reject
///           11: ip saddr @blocked drop           12: udp dport 8472 jump vxlan
///           14: meta mark set 0x10               15: iifname "eth*" ip6 daddr fd00::/8 udp sport != 53 drop
///     vxlan 13: ip saddr != 10.0.0.0/24 counter drop
///   ip filter INPUT 2: iptables -p udp --dport 4789 -j DROP
///                   3: iptables -p tcp -m multiport --dports 5,6 -j REJECT
///   ip mangle PREROUTING 2: iptables -j MARK --set-mark 0x5

namespace netplay::canned {

inline constexpr const char* kNftRuleset = R"json(
{"nftables":[
{"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},
{"table":{"family":"inet","name":"filter","handle":1}},
{"set":{"family":"inet","name":"blocked","table":"filter","type":"ipv4_addr","handle":4,"flags":["interval"],"elem":[{"prefix":{"addr":"10.2.0.0","len":16}},"10.3.3.3"]}},
{"chain":{"family":"inet","table":"filter","name":"input","handle":1,"type":"filter","hook":"input","prio":0,"policy":"accept"}},
{"chain":{"family":"inet","table":"filter","name":"forward","handle":2,"type":"filter","hook":"forward","prio":0,"policy":"drop"}},
{"chain":{"family":"inet","table":"filter","name":"vxlan","handle":3}},
{"rule":{"family":"inet","table":"filter","chain":"input","handle":5,"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":"invalid"}},{"drop":null}]}},
{"rule":{"family":"inet","table":"filter","chain":"input","handle":6,"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]}},
{"rule":{"family":"inet","table":"filter","chain":"input","handle":7,"comment":"no vxlan","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":4789}},{"counter":{"packets":12,"bytes":1200}},{"drop":null}]}},
{"rule":{"family":"inet","table":"filter","chain":"input","handle":9,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"set":[81,82]}}},{"drop":null}]}},
{"rule":{"family":"inet","table":"filter","chain":"input","handle":10,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"range":[1000,2000]}}},{"reject":{"type":"icmpx","expr":"port-unreachable"}}]}},
{"rule":{"family":"inet","table":"filter","chain":"input","handle":11,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@blocked"}},{"drop":null}]}},
{"rule":{"family":"inet","table":"filter","chain":"input","handle":12,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":8472}},{"jump":{"target":"vxlan"}}]}},
{"rule":{"family":"inet","table":"filter","chain":"input","handle":14,"expr":[{"mangle":{"key":{"meta":{"key":"mark"}},"value":16}}]}},
{"rule":{"family":"inet","table":"filter","chain":"input","handle":15,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"eth*"}},{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"daddr"}},"right":{"prefix":{"addr":"fd00::","len":8}}}},{"match":{"op":"!=","left":{"payload":{"protocol":"udp","field":"sport"}},"right":53}},{"drop":null}]}},
{"rule":{"family":"inet","table":"filter","chain":"vxlan","handle":13,"expr":[{"match":{"op":"!=","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.0.0.0","len":24}}}},{"counter":{"packets":0,"bytes":0}},{"drop":null}]}},
{"table":{"family":"ip","name":"filter","handle":2}},
{"chain":{"family":"ip","table":"filter","name":"INPUT","handle":1,"type":"filter","hook":"input","prio":0,"policy":"accept"}},
{"rule":{"family":"ip","table":"filter","chain":"INPUT","handle":2,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":4789}},{"counter":{"packets":0,"bytes":0}},{"drop":null}]}},
{"rule":{"family":"ip","table":"filter","chain":"INPUT","handle":3,"expr":[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"xt":{"type":"match","name":"multiport"}},{"counter":{"packets":0,"bytes":0}},{"xt":{"type":"target","name":"REJECT"}}]}},
{"table":{"family":"ip","name":"mangle","handle":3}},
{"chain":{"family":"ip","table":"mangle","name":"PREROUTING","handle":1,"type":"filter","hook":"prerouting","prio":-150,"policy":"accept"}},
{"rule":{"family":"ip","table":"mangle","chain":"PREROUTING","handle":2,"expr":[{"counter":{"packets":0,"bytes":0}},{"xt":{"type":"target","name":"MARK"}}]}}
]})json";

}  // namespace netplay::canned
