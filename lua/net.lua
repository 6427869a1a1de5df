--- net: naming and address helpers for playbook expressions and hooks.
-- Available everywhere as the global `net` (or `require("net")`). Pure Lua, no I/O.
-- The Silk names encode a container's IPv4 address: 10.255.211.40 is written
-- zero-padded as 010255211040 in interface names and as hex 0a:ff:d3:28 in MACs.

local net = {}

-- Errors point at the caller of the public function: level 3 from here when a public
-- function calls fail directly, 4 when it goes through v4().
local function fail_at(level, fname, fmt, ...)
  error(string.format("net." .. fname .. ": " .. fmt, ...), level)
end
local function fail(fname, fmt, ...)
  fail_at(4, fname, fmt, ...)
end

--- The four octets of a dotted-quad IPv4 address, or nil.
local function octets4(s)
  if type(s) ~= "string" then return nil end
  local a, b, c, d = s:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  if not a then return nil end
  local o = { tonumber(a), tonumber(b), tonumber(c), tonumber(d) }
  for i = 1, 4 do
    if o[i] > 255 then return nil end
  end
  return o
end

--- The sixteen bytes of an IPv6 address (with "::" and an optional trailing IPv4), or nil.
local function bytes6(s)
  if type(s) ~= "string" or not s:find(":", 1, true) then return nil end
  local head, tail = s, nil
  local dc = s:find("::", 1, true)
  if dc then
    head, tail = s:sub(1, dc - 1), s:sub(dc + 2)
    if tail:find("::", 1, true) then return nil end
  end
  local function groups(part)
    local out = {}
    if part == "" then return out end
    for g in (part .. ":"):gmatch("([^:]*):") do
      out[#out + 1] = g
    end
    return out
  end
  local hg, tg = groups(head), tail and groups(tail) or {}
  local words = {}
  local function add(list)
    for i, g in ipairs(list) do
      local last = (list == tg or not dc) and i == #list
      local v4 = last and octets4(g)
      if v4 then
        words[#words + 1] = v4[1] * 256 + v4[2]
        words[#words + 1] = v4[3] * 256 + v4[4]
      elseif g:match("^%x%x?%x?%x?$") then
        words[#words + 1] = tonumber(g, 16)
      else
        return false
      end
    end
    return true
  end
  if not add(hg) then return nil end
  local nhead = #words
  if not add(tg) then return nil end
  local ntail = #words - nhead
  local missing = 8 - nhead - ntail
  if (dc and missing < 1) or (not dc and missing ~= 0) then return nil end
  local full = {}
  for i = 1, nhead do full[#full + 1] = words[i] end
  for _ = 1, missing do full[#full + 1] = 0 end
  for i = nhead + 1, nhead + ntail do full[#full + 1] = words[i] end
  local bytes = {}
  for _, w in ipairs(full) do
    bytes[#bytes + 1] = w >> 8
    bytes[#bytes + 1] = w & 0xff
  end
  return bytes
end

local function v4(fname, ip)
  local o = octets4(ip)
  if not o then fail_at(5, fname, "invalid IPv4 address %q", tostring(ip)) end
  return o
end

--- true when s is an IPv4 or IPv6 address.
function net.is_ip(s)
  return octets4(s) ~= nil or bytes6(s) ~= nil
end

--- true when s is an IPv4 address.
function net.is_ipv4(s)
  return octets4(s) ~= nil
end

--- "10.255.211.40" -> "0affd328"; with sep ":" -> "0a:ff:d3:28".
function net.ip_hex(ip, sep)
  local o = v4("ip_hex", ip)
  local parts = {}
  for i = 1, 4 do parts[i] = string.format("%02x", o[i]) end
  return table.concat(parts, sep or "")
end

--- "10.255.211.40" -> "010255211040", the form Silk uses in interface names.
function net.ip_padded(ip)
  local o = v4("ip_padded", ip)
  return string.format("%03d%03d%03d%03d", o[1], o[2], o[3], o[4])
end

--- Host-side veth of a Silk container: "10.255.211.40" -> "s-010255211040".
function net.silk_host_iface(ip)
  local o = v4("silk_host_iface", ip)
  return string.format("s-%03d%03d%03d%03d", o[1], o[2], o[3], o[4])
end

--- Container-side interface of a Silk container: "10.255.211.40" -> "c-010255211040".
function net.silk_container_iface(ip)
  local o = v4("silk_container_iface", ip)
  return string.format("c-%03d%03d%03d%03d", o[1], o[2], o[3], o[4])
end

--- The container IP encoded in a Silk interface name: "s-010255211040" -> "10.255.211.40".
function net.silk_iface_ip(name)
  local a, b, c, d = tostring(name):match("^[sc]%-(%d%d%d)(%d%d%d)(%d%d%d)(%d%d%d)$")
  local ip = a and string.format("%d.%d.%d.%d", tonumber(a), tonumber(b), tonumber(c), tonumber(d))
  if not ip or not octets4(ip) then
    fail("silk_iface_ip", "not a Silk interface name %q (expected s-NNNNNNNNNNNN or c-NNNNNNNNNNNN)",
      tostring(name))
  end
  return ip
end

--- A Silk MAC: prefix plus the hex of the IPv4, ("aa:aa", "10.255.211.40") -> "aa:aa:0a:ff:d3:28".
function net.silk_mac(prefix, ip)
  if type(prefix) ~= "string" or not prefix:match("^%x%x:%x%x$") then
    fail("silk_mac", "invalid MAC prefix %q (expected two hex bytes such as \"aa:aa\")", tostring(prefix))
  end
  local o = v4("silk_mac", ip)
  return string.format("%s:%02x:%02x:%02x:%02x", prefix:lower(), o[1], o[2], o[3], o[4])
end

--- MAC of the host-side veth (the container's gateway ARP entry must point here).
function net.silk_host_mac(ip)
  local o = v4("silk_host_mac", ip)
  return string.format("aa:aa:%02x:%02x:%02x:%02x", o[1], o[2], o[3], o[4])
end

--- MAC of the container-side interface; also the VTEP MAC for an overlay address.
function net.silk_container_mac(ip)
  local o = v4("silk_container_mac", ip)
  return string.format("ee:ee:%02x:%02x:%02x:%02x", o[1], o[2], o[3], o[4])
end
net.silk_vtep_mac = net.silk_container_mac

--- true when ip lies inside cidr ("10.255.211.40", "10.255.0.0/16"); both IPv4 or both IPv6.
function net.in_cidr(ip, cidr)
  if type(cidr) ~= "string" then fail("in_cidr", "invalid CIDR %q", tostring(cidr)) end
  local base, len = cidr:match("^([^/]+)/(%d+)$")
  local b = base and (octets4(base) or bytes6(base))
  local prefix = tonumber(len)
  if not b or prefix > #b * 8 then
    fail("in_cidr", "invalid CIDR %q (expected ADDRESS/PREFIX such as \"10.255.0.0/16\")", cidr)
  end
  local a = octets4(ip) or bytes6(ip)
  if not a then fail("in_cidr", "invalid IP address %q", tostring(ip)) end
  if #a ~= #b then return false end
  local bits = prefix
  for i = 1, #a do
    if bits <= 0 then return true end
    local take = bits >= 8 and 8 or bits
    local mask = (0xff << (8 - take)) & 0xff
    if (a[i] & mask) ~= (b[i] & mask) then return false end
    bits = bits - take
  end
  return true
end

return net
