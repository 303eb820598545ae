// The SharedWorker that writes a bus for the pages of its origin (`Bus.open`'s
// `sharedWorker`; one worker per bus name and engine build). A page posts the bus's
// name and durability; the worker opens the bus, which asks for the writer's lock,
// and answers, and the page asks for the lock only after that: the worker writes
// while any page is open, and a page takes over if it dies.
export function hostBus(Bus) {
  let opened = null;
  self.onconnect = ({ ports: [port] }) => {
    port.onmessage = ({ data: { name, durability } }) => {
      // Opened anew when the last bus was closed (its database deleted or upgraded
      // by another context) or failed to open.
      const open = () => Bus.open({ name, durability });
      opened = opened ? opened.then((bus) => bus.topics().then(() => bus)).catch(open) : open();
      // Asked, or failed to open: the page asks for the lock next, either way. The
      // worker's request and the page's reach the browser's lock manager by separate
      // ways: the worker's is there once a query it makes after it is answered.
      const answer = () => navigator.locks.query().finally(() => port.postMessage(null));
      opened.then(answer, answer);
    };
  };
}
