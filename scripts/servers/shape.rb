# The work of one job or request in the soak workloads (scripts/soak), shaped like
# what fragments glibc's malloc in production Ruby servers: threads that wait on I/O
# which releases the GVL (Redis round trips, file reads, short sleeps) while they
# build strings from ~100 B to ~1 MB, most of which die with the job while a few stay
# in a bounded cache that turns over. One job in HEAVY_EVERY is a report-style job
# that builds tens of MiB. Everything is drawn from a generator seeded by the job's
# number, so a run's sequence of jobs is the same for every variant.
#
# scripts/servers/shape.py is the same shape in Python; keep the two in step.
require "json"

module Shape
  SEED = Integer(ENV.fetch("SOAK_SEED", "1"))
  # 1 in HEAVY_EVERY jobs builds HEAVY_MIB MiB of 10 KB-1 MB strings.
  HEAVY_EVERY = Integer(ENV.fetch("SOAK_HEAVY_EVERY", "25"))
  HEAVY_MIB = Integer(ENV.fetch("SOAK_HEAVY_MIB", "32"))
  # The shared cache: this many slots, each replaced at random, so that entries live
  # for minutes and their sizes vary.
  SLOTS = 2000
  CACHE = {}
  LOCK = Mutex.new
  # A file read back in pieces, as a template, upload or attachment would be.
  FILE = ENV.fetch("SOAK_FILE") { File.expand_path("shape.rb", __dir__) }

  module_function

  # Log-uniform between lo and hi: as many 100-byte strings as 100-kilobyte ones.
  def size(rng, lo, hi)
    (lo * ((hi.to_f / lo)**rng.rand)).to_i
  end

  # A string of about `bytes`, built one of the ways Ruby code builds them.
  def build(rng, bytes)
    case rng.rand(3)
    when 0 then "x" * bytes
    when 1
      s = +""
      s << ("a" * rng.rand(16..2048)) while s.bytesize < bytes
      s
    else JSON.generate(Array.new([bytes / 40, 1].max) { |i| "item-#{i}" })
    end
  end

  # Waits on I/O as a job does, the GVL released meanwhile.
  def wait(rng, redis)
    redis.set("soak:k#{rng.rand(1000)}", "v" * rng.rand(10..2000))
    redis.get("soak:k#{rng.rand(1000)}")
    sleep(rng.rand * 0.004)
    File.open(FILE) { |f| f.read(rng.rand(100..65_536)) }
  end

  # Runs job `id`; returns the bytes it built.
  def run(id, redis)
    rng = Random.new(SEED * 1_000_003 + id)
    parts = []
    if (id % HEAVY_EVERY).zero?
      total = 0
      while total < HEAVY_MIB << 20
        parts << build(rng, size(rng, 10_000, 1_000_000))
        total += parts.last.bytesize
        wait(rng, redis) if (parts.size % 16).zero?
      end
    else
      rng.rand(10..40).times do |k|
        parts << build(rng, size(rng, 100, 65_536))
        wait(rng, redis) if (k % 4).zero?
      end
    end
    if rng.rand < 0.5
      kept = parts[rng.rand(parts.size)][0, size(rng, 100, 20_000)]
      LOCK.synchronize { CACHE[rng.rand(SLOTS)] = kept }
    end
    redis.setex("soak:result:#{id}", 60, parts.sum(&:bytesize).to_s)
    parts.sum(&:bytesize)
  end
end
