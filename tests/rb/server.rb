# A small threaded HTTP server for the heap-profiling tests (tests/profile.rs), with
# nothing but Ruby's standard library: listens on 127.0.0.1:$PORT and allocates per
# request (a bounded cache of strings), as tests/py/server.py does. Serves until killed.
require "socket"

CACHE = {}
LOCK = Mutex.new
server = TCPServer.new("127.0.0.1", Integer(ENV.fetch("PORT")))
loop do
  client = server.accept
  Thread.new(client) do |c|
    while (line = c.gets)
      n = line[%r{GET /(\d*)}, 1].to_i
      nil until (h = c.gets).nil? || h == "\r\n"
      body = ("r" * 256) * (1 + n % 64)
      LOCK.synchronize { CACHE[n % 500] = body.dup }
      c.write("HTTP/1.1 200 OK\r\nContent-Length: #{body.bytesize}\r\n\r\n#{body}")
    end
  rescue IOError, SystemCallError
    nil
  ensure
    c.close
  end
end
