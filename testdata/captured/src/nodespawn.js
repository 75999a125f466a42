const cp=require('child_process'); const ps=[];
for (let i=0;i<200;i++){ const p=cp.spawn('sleep',['30']); p.on('error',e=>{console.error(String(e)); console.error(e); process.exit(1)}); ps.push(p);}
