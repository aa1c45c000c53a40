# The load of the Sidekiq soak (scripts/soak): for SECONDS, keeps DEPTH jobs queued or
# running (as a busy queue does), then waits for every job to finish (at most
# DRAIN more seconds) and prints the throughput and the mean time from enqueue to
# finish as `allocshim-metric` lines for `allocshim compare`. Exit status 1 when jobs
# were lost or did not finish.
#
# Usage: enqueue.rb SECONDS [DEPTH] [DRAIN]
require_relative "sidekiq_job"

seconds = Float(ARGV.fetch(0))
depth = Integer(ARGV.fetch(1, "20"))
drain = Float(ARGV.fetch(2, "120"))
redis = Redis.new(url: ENV.fetch("REDIS_URL"))
done = -> { redis.get(Soak::DONE).to_i }
now = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
t0 = now.call
pushed = 0
while now.call - t0 < seconds
  missing = depth - (pushed - done.call)
  if missing.positive?
    args = Array.new(missing) { |i| [pushed + i, Time.now.to_f] }
    Sidekiq::Client.push_bulk("class" => SoakJob, "args" => args)
    pushed += missing
  end
  sleep 0.02
end
sleep 0.05 while done.call < pushed && now.call - t0 < seconds + drain
elapsed = now.call - t0
finished = done.call
puts "allocshim-metric jobs_per_s #{format('%.2f', finished / elapsed)} jobs/s"
puts "allocshim-metric latency_avg_ms #{format('%.1f', redis.get(Soak::LATENCY).to_f / [finished, 1].max * 1000)} ms"
puts "allocshim-metric jobs #{finished} count"
if finished != pushed
  warn "enqueue.rb: #{pushed - finished} of #{pushed} jobs did not finish within #{drain} s of the end"
  exit 1
end
