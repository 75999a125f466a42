import threading, time
ts=[]
for i in range(1000):
    t=threading.Thread(target=time.sleep, args=(30,)); t.daemon=True; t.start(); ts.append(t)
