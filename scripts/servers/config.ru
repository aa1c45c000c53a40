# A Rails-like JSON endpoint for Puma (Debian's puma + ruby-rack), used by
# scripts/soak to measure allocators on a threaded Ruby server: each
# request builds a list of records, renders it as JSON and stores a piece of varying
# size in a cache shared by all threads (bounded, so RSS growth is fragmentation,
# not data).
require "json"

CACHE = {}
LOCK = Mutex.new

app = lambda do |_env|
  rows = Array.new(rand(20..200)) do |i|
    { id: i, name: "user-#{rand(100_000)}", email: "user#{i}@example.com",
      tags: Array.new(rand(1..8)) { "t" * rand(1..64) }, score: rand }
  end
  body = JSON.generate(rows: rows)
  LOCK.synchronize { CACHE[rand(2000)] = body[0, rand(100..20_000)] }
  [200, { "content-type" => "application/json" }, [body]]
end
run app
