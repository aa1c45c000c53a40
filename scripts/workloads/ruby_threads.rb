# Multi-threaded string and array churn under Ruby's GC: 4 threads each build and
# drop arrays of strings of mixed sizes, like request handlers in a threaded server.
# Usage: ruby ruby_threads.rb [rounds]
rounds = (ARGV[0] || 40).to_i
threads = 4.times.map do |t|
  Thread.new do
    kept = []
    rounds.times do |r|
      batch = Array.new(5_000) { |i| "#{t}-#{r}-#{i}-" * (1 + (i * 7 + r) % 40) }
      kept << batch.select.with_index { |_, i| i % 50 == 0 }
      kept.shift if kept.size > 20
      batch.map!(&:upcase).sort!
    end
    kept.flatten.size
  end
end
puts "ruby_threads: kept #{threads.sum(&:value)} strings"
