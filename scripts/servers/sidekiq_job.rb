# The Sidekiq soak worker (scripts/soak): Debian's sidekiq with `-r` this file runs
# jobs of the shape in shape.rb. Each run (PORT, set by `allocshim compare` per run)
# has its own queue and counters in Redis (REDIS_URL), so that nothing of an earlier
# run is picked up; the worker marks itself ready once Sidekiq has started.
require "sidekiq"
require_relative "shape"

Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

module Soak
  RUN = ENV.fetch("PORT")
  QUEUE = "soak#{RUN}".freeze
  DONE = "soak:#{RUN}:done".freeze
  LATENCY = "soak:#{RUN}:latency".freeze
  READY = "soak:#{RUN}:ready".freeze
end

class SoakJob
  include Sidekiq::Worker
  sidekiq_options retry: false, queue: Soak::QUEUE

  def perform(id, enqueued_at)
    Sidekiq.redis do |r|
      Shape.run(id, r)
      r.multi do |m|
        m.incr(Soak::DONE)
        m.incrbyfloat(Soak::LATENCY, Time.now.to_f - enqueued_at)
      end
    end
  end
end

Sidekiq.configure_server do |config|
  config.on(:startup) { Sidekiq.redis { |r| r.set(Soak::READY, "1") } }
end
