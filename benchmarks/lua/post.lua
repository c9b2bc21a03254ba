-- unitbench: every request POSTs the same body, read once from a file.
-- usage: wrk [options] -s post.lua URL -- BODY_FILE [CONTENT_TYPE ["Name: value" ...]]
-- At the end one line "UNITBENCH {...}" carries the counts and latency percentiles (microseconds)
-- for the harness; no response() callback is defined, so wrk does not hand bodies to Lua.

function init(args)
  local file = assert(io.open(args[1], "rb"), "cannot open body file " .. tostring(args[1]))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  wrk.headers["Content-Type"] = args[2] or "application/json"
  -- further arguments are extra headers, e.g. the binary extension's JSON length
  for i = 3, #args do
    local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
  file:close()
end

function done(summary, latency, requests)
  local errors = summary.errors
  local fields = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"bytes":%d', summary.bytes),
    string.format('"connect":%d', errors.connect),
    string.format('"read":%d', errors.read),
    string.format('"write":%d', errors.write),
    string.format('"status":%d', errors.status),
    string.format('"timeout":%d', errors.timeout),
    string.format('"mean_us":%.1f', latency.mean),
    string.format('"max_us":%d', latency.max),
  }
  for _, q in ipairs({50, 90, 99, 99.9}) do
    table.insert(fields, string.format('"p%s_us":%d', tostring(q), latency:percentile(q)))
  end
  io.write("UNITBENCH {" .. table.concat(fields, ",") .. "}\n")
end
