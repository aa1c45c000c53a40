# The Puma soak app (scripts/soak): every request does the work of one job of
# shape.rb (Redis round trips, file reads and short sleeps, the GVL released, while
# it builds strings of 100 B to 1 MB), numbered in arrival order so that a run's
# requests are the same sequence for every variant. Redis is at REDIS_URL; each
# Puma thread keeps its own connection, as a connection pool would give it.
require "redis"
require_relative "shape"

Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

$soak_requests = 0
SOAK_COUNT = Mutex.new

run lambda { |_env|
  id = SOAK_COUNT.synchronize { $soak_requests += 1 }
  redis = (Thread.current[:soak_redis] ||= Redis.new(url: ENV.fetch("REDIS_URL")))
  bytes = Shape.run(id, redis)
  [200, { "content-type" => "application/json" }, [%({"request":#{id},"bytes":#{bytes}}\n)]]
}
