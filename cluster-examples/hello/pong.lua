-- Stage `pong` (node beta): answers every hello, and now and then tells ping some news.

stage.waitfor("hello", function(n, text)
  print(string.format("pong: hello #%d %s", n, text))
  if n % 3 == 0 then
    stage.signal("ping:news=ack", "pong has seen " .. n .. " hellos")
  end
  return n, "nice to meet you, I am pong on node " .. stage.id()
end)

stage.waitfor("ack", function(text)
  print("pong: ping says: " .. text)
end)
