// The host adds the bridge script that defines `symphony.call` and `symphony.on`.
document.getElementById("greet").addEventListener("click", async () => {
  const name = document.getElementById("name").value;
  document.getElementById("answer").textContent = await symphony.call("greet", { name });
});

symphony.on("greeted", (data) => {
  document.getElementById("count").textContent = `${data.count} greeting(s) so far.`;
});
